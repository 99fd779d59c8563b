use enrollment_apps::ALL;
use qr_packer::dictionary::{self, Dictionary, TrainingApp};
use qr_packer::strip::strip_custom_sections;
use qr_packer::*;
fn main() {
    let stripped: Vec<(String, Vec<u8>, Vec<u8>)> = ALL.iter().map(|a| (a.name.to_string(), strip_custom_sections(a.phone).unwrap(), strip_custom_sections(a.device).unwrap())).collect();
    let key = ManufacturerKey::from_secret("acme-1", [1; 32]).unwrap();
    for (i, app) in ALL.iter().enumerate() {
        let others: Vec<TrainingApp> = stripped.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, s)| TrainingApp { name: &s.0, phone: &s.1, device: &s.2 }).collect();
        let dict = Dictionary::custom(200, "loo", dictionary::train(&others));
        let halves = Halves { phone: app.phone.to_vec(), device: app.device.to_vec(), operational: None };
        let prepared = PreparedApp::prepare(halves.clone(), &dict).unwrap();
        let nodict = PreparedApp::prepare(halves, &Dictionary::none()).unwrap();
        let m = Manifest { format_version: 1, app_id: app.name.into(), app_version: "0.1.0".into(), manufacturer: "Acme".into(), product: "Meter".into(), access: if i == 0 {"wifi".into()} else {"zigbee".into()}, capabilities: vec![], device_id: Some(if i == 0 {"AC-DE-48-00-00-80".into()} else {"AC-DE-48-00-00-00-00-80".into()}), one_time_secret: Some(vec![9; 16]), params: Default::default() };
        let p = prepared.seal(&m, &key).unwrap();
        println!("{}: loo compressed {} nodict {} signed {} chars {} version {}", app.name, prepared.sizes().compressed, nodict.sizes().compressed, p.as_bytes().len(), p.to_text().len(), Label::new(&p.to_text(), Ec::M).unwrap().version());
    }
}
