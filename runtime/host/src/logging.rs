//! The log filter every runtime binary starts with.
//!
//! Operators want one line per enrollment from our crates by default, and
//! `RUST_LOG=debug` to mean *our* debug lines: at debug, the compiler
//! (cranelift, winch), wasmtime, the HTTP stack and SQLite drivers print
//! well over a thousand lines per enrollment and drown what was asked for.
//! So the dependencies stay at `warn` unless `RUST_LOG` names them itself
//! (`RUST_LOG=debug,cranelift_codegen=debug` still gets them).

/// Crates that stay at `warn` unless `RUST_LOG` names them.
pub const QUIET_DEPENDENCIES: &[&str] = &[
    "cranelift_codegen",
    "cranelift_frontend",
    "winch_codegen",
    "wasmtime",
    "wasmtime_cranelift",
    "wasmtime_winch",
    "wasmtime_environ",
    "wasmtime_internal_cranelift",
    "wasmtime_internal_winch",
    "sqlx",
    "rusqlite",
    "hyper",
    "hyper_util",
    "h2",
    "reqwest",
    "rustls",
    "tower",
    "tower_http",
    "axum",
    "mio",
];

/// The filter directives (`tracing_subscriber::EnvFilter` syntax) for
/// `rust_log` (the `RUST_LOG` value, if set), or `default` when it is not.
pub fn directives(rust_log: Option<&str>, default: &str) -> String {
    let given = rust_log.map(str::trim).filter(|s| !s.is_empty());
    let mut out = given.unwrap_or(default).to_string();
    for dep in QUIET_DEPENDENCIES {
        let named = given.is_some_and(|g| g.split(',').any(|d| d.trim().starts_with(dep)));
        if !named {
            out.push_str(&format!(",{dep}=warn"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dependencies_stay_quiet_unless_named() {
        let d = directives(Some("debug"), "info");
        assert!(d.starts_with("debug,"), "{d}");
        assert!(d.contains(",cranelift_codegen=warn") && d.contains(",sqlx=warn"), "{d}");
        let d = directives(Some("debug,sqlx=debug"), "info");
        assert!(!d.contains("sqlx=warn"), "named: {d}");
        assert!(directives(None, "warn,enrollment_gateway=info").starts_with("warn,enrollment_gateway=info,"));
        assert!(directives(Some("  "), "warn").starts_with("warn,"), "an empty RUST_LOG is the default");
    }
}
