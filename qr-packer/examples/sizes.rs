//! Sizes of every reference half: as built, stripped of custom sections, and
//! each of those compressed with zstd at level 19 (no dictionary), plus the
//! pair compressed as one frame. Prints a Markdown table for BENCHMARKS.md.
//!
//! `cargo run --release -p qr-packer --example sizes`

use enrollment_apps::ALL;
use qr_packer::strip::strip_custom_sections;

fn zstd19(bytes: &[u8]) -> usize {
    zstd::bulk::compress(bytes, 19).map(|c| c.len()).unwrap_or(usize::MAX)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("| app | half | core module | component as built | zstd -19 | stripped | stripped, zstd -19 |");
    println!("| --- | --- | ---: | ---: | ---: | ---: | ---: |");
    for app in ALL {
        let mut pair_raw = Vec::new();
        let mut pair_stripped = Vec::new();
        for (half, component, core) in [("phone", app.phone, app.phone_core), ("device", app.device, app.device_core)] {
            let stripped = strip_custom_sections(component)?;
            println!(
                "| {} | {half} | {} | {} | {} | {} | {} |",
                app.name,
                core.len(),
                component.len(),
                zstd19(component),
                stripped.len(),
                zstd19(&stripped)
            );
            pair_raw.extend_from_slice(component);
            pair_stripped.extend_from_slice(&stripped);
        }
        println!(
            "| {} | pair, one frame | | {} | {} | {} | {} |",
            app.name,
            pair_raw.len(),
            zstd19(&pair_raw),
            pair_stripped.len(),
            zstd19(&pair_stripped)
        );
    }
    Ok(())
}
