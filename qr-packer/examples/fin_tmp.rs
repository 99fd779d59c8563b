use qr_packer::{dictionary::compress, Dictionary};
fn cbor(p: &[u8], d: &[u8]) -> Vec<u8> { let mut v = vec![]; ciborium::into_writer(&ciborium::Value::Array(vec![ciborium::Value::Bytes(p.to_vec()), ciborium::Value::Bytes(d.to_vec())]), &mut v).unwrap(); v }
fn trailer(p: &[u8], d: &[u8]) -> Vec<u8> { let mut v = p.to_vec(); v.extend(d); v.extend((p.len() as u16).to_le_bytes()); v.extend((d.len() as u16).to_le_bytes()); v }
fn main() {
    let r = |n: &str| std::fs::read(format!("/tmp/qrx/{n}.wasm")).unwrap();
    let apps = ["wifi-meter", "zigbee-sensor", "ethernet-controller"];
    for target in apps {
        let others: Vec<&str> = apps.iter().copied().filter(|a| *a != target).collect();
        let (tp, td) = (r(&format!("{target}-phone")), r(&format!("{target}-device")));
        let mut a = Vec::new();
        for o in &others { a.extend(r(&format!("{o}-phone"))); }
        for o in &others { a.extend(r(&format!("{o}-device"))); }
        let b: Vec<u8> = others.iter().flat_map(|o| cbor(&r(&format!("{o}-phone")), &r(&format!("{o}-device")))).collect();
        let c: Vec<u8> = others.iter().flat_map(|o| trailer(&r(&format!("{o}-phone")), &r(&format!("{o}-device")))).collect();
        let d: Vec<u8> = others.iter().flat_map(|o| [r(&format!("{o}-phone")), r(&format!("{o}-device"))].concat()).collect();
        let dd = |x: &Vec<u8>| Dictionary::custom(5, "x", x.clone());
        println!("{target}: A {} B {} C {} D {} Dc {} Bt {}", compress(&cbor(&tp,&td), &dd(&a)).unwrap().len(), compress(&cbor(&tp,&td), &dd(&b)).unwrap().len(),
            compress(&trailer(&tp,&td), &dd(&c)).unwrap().len(), compress(&[tp.clone(), td.clone()].concat(), &dd(&d)).unwrap().len(), compress(&cbor(&tp,&td), &dd(&d)).unwrap().len(), compress(&trailer(&tp,&td), &dd(&a)).unwrap().len());
    }
}
