fn main() {
    for app in enrollment_apps::ALL {
        std::fs::write(format!("/tmp/qrx/{}-phone.wasm", app.name), qr_packer::strip::strip_custom_sections(app.phone).unwrap()).unwrap();
        std::fs::write(format!("/tmp/qrx/{}-device.wasm", app.name), qr_packer::strip::strip_custom_sections(app.device).unwrap()).unwrap();
    }
}
