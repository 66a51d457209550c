use std::process::ExitCode;

use proxy::process::cli::{self, Action};
use proxy::settings::Settings;
use proxy::startup::Application;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<ExitCode> {
    if let Action::Exit(code) = cli::handle(&proxy::settings::about(), std::env::args().skip(1)) {
        return Ok(code);
    }
    proxy::process::telemetry::init();
    actix_web::rt::System::new().block_on(async {
        let settings = Settings::from_env()?;
        let app = Application::build(settings).await?;
        app.run_until_stopped().await
    })?;
    Ok(ExitCode::SUCCESS)
}
