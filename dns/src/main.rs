use clap::Parser;
use rkube_dns::{App, Args};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    rkube_client::daemon::init_tracing(&args.log_format).map_err(anyhow::Error::msg)?;
    let app = App::build(args).await?;
    app.run(rkube_client::daemon::shutdown_signal()).await
}
