//! `dvc-bridge check-config`: every problem with file, key and reason; exit 0 or 2.

use std::path::Path;

use super::{EXIT_ERROR, EXIT_OK};

pub fn main(file: &Path) -> u8 {
    match crate::config::load(file, true) {
        Ok(s) => {
            println!("{}: OK", file.display());
            for src in &s.sources {
                println!(
                    "  source {:<10} {:<9} adapter {} ({}), portal mode {:?}",
                    src.config.name,
                    format!("{:?}", src.descriptor.kind).to_lowercase(),
                    src.config.adapter,
                    src.descriptor_path.display(),
                    src.config.portal_mode
                );
            }
            println!("  cutover rows: {}", s.cutover.cutover.len());
            println!("  database: {}", s.db_path().display());
            EXIT_OK
        }
        Err(errors) => {
            eprintln!("{}: {} problem(s):", file.display(), errors.0.len());
            for issue in &errors.0 {
                eprintln!("  {issue}");
            }
            EXIT_ERROR
        }
    }
}
