use std::time::Instant;
fn main() {
    let key = qr_packer::ManufacturerKey::from_secret("acme-1", [7; 32]).unwrap();
    let app = enrollment_apps::WIFI_METER;
    let p = qr_packer::PreparedApp::prepare(qr_packer::Halves { phone: app.phone.to_vec(), device: app.device.to_vec(), operational: None }, &qr_packer::Dictionary::current()).unwrap();
    let mut m = qr_packer::manifest::reference(&app).unwrap();
    m.device_id = Some("AC-DE-48-00-00-80".into());
    let t = Instant::now(); let mut text = String::new();
    for _ in 0..1000 { text = p.seal(&m, &key).unwrap().to_text(); }
    println!("seal+text {:?}/op", t.elapsed() / 1000);
    let t = Instant::now();
    for _ in 0..100 { qr_packer::Label::new(&text, qr_packer::Ec::M).unwrap(); }
    println!("label {:?}/op", t.elapsed() / 100);
    let t = Instant::now();
    for _ in 0..1000 { qrcode::bits::encode_auto(text.as_bytes(), qrcode::EcLevel::M).unwrap(); }
    println!("bits {:?}/op", t.elapsed() / 1000);
    let t = Instant::now();
    for _ in 0..1000 { m.to_cbor().unwrap(); }
    println!("manifest {:?}/op", t.elapsed() / 1000);
}
