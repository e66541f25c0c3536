//! `dvc-bridge run`: the daemon.

use std::path::Path;
use std::sync::Arc;

use super::{EXIT_ERROR, EXIT_OK, LogFormatArg, LogOutput};

pub fn main(file: &Path, log_format: Option<LogFormatArg>) -> u8 {
    let settings = match crate::config::load(file, true) {
        Ok(s) => s,
        Err(errors) => {
            eprintln!("dvc-bridge: the configuration has {} problem(s); nothing started:", errors.0.len());
            for issue in &errors.0 {
                eprintln!("  {issue}");
            }
            return EXIT_ERROR;
        }
    };
    super::init_logging(&settings.config.log.level, LogOutput::choose(log_format, settings.config.log.format));
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return super::fail(&e.into()),
    };
    let result = rt.block_on(async {
        let (stop, reload) = crate::daemon::signals()?;
        crate::daemon::run(settings, stop, reload, Arc::default()).await
    });
    match result {
        Ok(()) => EXIT_OK,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "dvc-bridge stopped on an error");
            super::fail(&e)
        }
    }
}
