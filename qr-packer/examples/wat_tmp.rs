fn main() {
    let app = enrollment_apps::ALL.iter().find(|a| a.name == std::env::args().nth(1).unwrap()).unwrap();
    let core = if std::env::args().nth(2).unwrap() == "phone" { app.phone_core } else { app.device_core };
    let stripped = qr_packer::strip::strip_custom_sections(core).unwrap();
    println!("{}", wasmprinter::print_bytes(&stripped).unwrap());
}
