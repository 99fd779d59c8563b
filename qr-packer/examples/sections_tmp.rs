use wasmparser::{Parser, Payload};
fn main() {
    let bytes = std::fs::read(std::env::args().nth(1).unwrap()).unwrap();
    let mut depth = 0;
    for p in Parser::new(0).parse_all(&bytes) {
        let p = p.unwrap();
        match &p {
            Payload::ModuleSection { unchecked_range, .. } | Payload::ComponentSection { unchecked_range, .. } => { println!("{:w$}nested {:?} {}", "", std::mem::discriminant(&p), unchecked_range.end - unchecked_range.start, w = depth*2); depth += 1; continue }
            Payload::End(_) => { depth -= 1; continue }
            _ => {}
        }
        if let Some((id, range)) = p.as_section() { println!("{:w$}section {id} {} bytes", "", range.end - range.start, w = depth*2); }
        if let Payload::CodeSectionStart { size, .. } = p { println!("{:w$}code {size}", "", w=depth*2); }
    }
}
