//! The CSV an operator imports mappings from (`control-server mapping
//! import`, `POST /v1/admin/mappings/import`):
//!
//! ```text
//! device_id,sp,service_type,access
//! AC-DE-48-00-00-80,sp-one.example,metering,wifi
//! AC-DE-48-00-00-81,sp-one.example,,
//! ```
//!
//! The header is optional (without it the columns are in this order);
//! `service_type` and `access` may be empty or left out. Blank lines and
//! lines starting with `#` are skipped. Fields may be double-quoted (`""`
//! is a quote inside). Parsed here by hand, because the format is this
//! small and every error must name its line.

use super::{AdminError, MappingInput};

/// One bad line of an import.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LineError {
    /// 1-based line number in the file.
    pub line: usize,
    pub message: String,
}

/// One parsed row and where it was.
#[derive(Debug, Clone)]
pub struct CsvRow {
    pub line: usize,
    pub input: MappingInput,
}

const COLUMNS: [&str; 4] = ["device_id", "sp", "service_type", "access"];

/// Splits one line into fields (double quotes allowed).
fn fields(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut field = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    let mut was_quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') if field.trim().is_empty() && !was_quoted => {
                field.clear();
                quoted = true;
                was_quoted = true;
            }
            (false, '"') => return Err("a quote in the middle of an unquoted field".into()),
            (false, ',') => {
                out.push(std::mem::take(&mut field));
                was_quoted = false;
            }
            (false, c) if was_quoted && !c.is_whitespace() => {
                return Err("text after a closing quote (separate fields with ',')".into());
            }
            (false, c) => field.push(c),
        }
    }
    if quoted {
        return Err("a quoted field is not closed".into());
    }
    out.push(field);
    Ok(out.into_iter().map(|f| f.trim().to_owned()).collect())
}

/// Parses the whole file; every bad line is reported (nothing is returned
/// unless all are good).
pub fn parse_mappings(text: &str) -> Result<Vec<CsvRow>, AdminError> {
    let mut order: [usize; 4] = [0, 1, 2, 3];
    let mut width = COLUMNS.len();
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    let mut first = true;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let trimmed = raw.trim().trim_start_matches('\u{feff}');
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let f = match fields(trimmed) {
            Ok(f) => f,
            Err(e) => {
                errors.push(LineError { line, message: e });
                first = false;
                continue;
            }
        };
        if first {
            first = false;
            if f.first().is_some_and(|c| c.eq_ignore_ascii_case("device_id")) {
                width = f.len();
                let mut seen = [usize::MAX; 4];
                for (pos, name) in f.iter().enumerate() {
                    match COLUMNS.iter().position(|c| c.eq_ignore_ascii_case(name)) {
                        Some(k) if seen[k] == usize::MAX => seen[k] = pos,
                        Some(_) => errors.push(LineError { line, message: format!("column {name:?} appears twice") }),
                        None => errors.push(LineError {
                            line,
                            message: format!("unknown column {name:?} (the columns are {})", COLUMNS.join(", ")),
                        }),
                    }
                }
                if seen[1] == usize::MAX {
                    errors.push(LineError { line, message: "the header has no sp column".into() });
                }
                order = seen;
                continue;
            }
        }
        if f.len() > width || f.len() < 2 {
            errors.push(LineError {
                line,
                message: format!("{} field(s); a row is device_id,sp[,service_type[,access]]", f.len()),
            });
            continue;
        }
        let get = |k: usize| order.get(k).and_then(|&pos| f.get(pos)).filter(|v| !v.is_empty()).cloned();
        let (Some(device_id), Some(sp)) = (get(0), get(1)) else {
            errors.push(LineError { line, message: "device_id and sp must not be empty".into() });
            continue;
        };
        rows.push(CsvRow { line, input: MappingInput { device_id, sp, service_type: get(2), access: get(3) } });
    }
    if !errors.is_empty() {
        return Err(AdminError::Csv(errors));
    }
    if rows.is_empty() {
        return Err(AdminError::Invalid("the file has no rows (device_id,sp[,service_type[,access]])".into()));
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_and_quotes() {
        assert_eq!(fields("a, b ,c").unwrap(), ["a", "b", "c"]);
        assert_eq!(fields(r#""a,1","say ""hi""",x"#).unwrap(), ["a,1", r#"say "hi""#, "x"]);
        assert!(fields(r#""open"#).is_err());
        assert!(fields(r#"a"b"#).is_err());
    }

    #[test]
    fn headers_reorder_and_errors_name_their_line() {
        let rows = parse_mappings("device_id,access,sp\nAC-DE-48-00-00-80,wifi,sp-one.example\n").unwrap();
        assert_eq!(rows[0].line, 2);
        assert_eq!(rows[0].input.access.as_deref(), Some("wifi"));
        assert_eq!(rows[0].input.sp, "sp-one.example");
        let Err(AdminError::Csv(errors)) = parse_mappings("AC-DE-48-00-00-80,sp-one.example\n\nonly-one\n") else {
            panic!("a one-field row is an error")
        };
        assert_eq!(errors, [LineError { line: 3, message: errors[0].message.clone() }]);
    }
}
