use clap::Parser;

fn main() -> std::process::ExitCode {
    comity_node::process::bound_allocator();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let cli = comity_node::cli::Cli::parse();
    if !cli.is_daemon() {
        comity_node::process::default_sigpipe();
    }
    match runtime.block_on(comity_node::cli::run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
