use std::process::ExitCode;

use control::settings::Settings;
use control::startup::Application;
use proxy::process::cli::{self, Action};

fn main() -> anyhow::Result<ExitCode> {
    if let Action::Exit(code) = cli::handle(&control::settings::about(), std::env::args().skip(1)) {
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
