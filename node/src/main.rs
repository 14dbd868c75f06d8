use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = comity_node::cli::Cli::parse();
    match comity_node::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
