use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use keygate::app::variables;
use keygate::cli::{self, Cli, Command};
use keygate::{Application, Config};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// mimalloc rather than glibc's allocator. glibc kept the 19 MiB argon2
/// blocks of freed verifications in its arenas (its mmap threshold grows
/// to the largest block freed), so 40 new clients verified took the
/// process from 40 to 260 MiB resident for good; mimalloc gives such
/// blocks back, and its small allocations are faster on the token path.
/// (The argon2 threads now keep one block each: `keygate::argon2id`.)
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let huge_pages = no_transparent_huge_pages();
    // clap's own handling: help and version on stdout (exit 0); an error, or
    // a group such as `keygate keys` without its subcommand, prints clap's
    // whole message and usage on stderr and exits 2.
    let cli = Cli::parse();
    init_tracing();
    if let Err(error) = huge_pages {
        tracing::debug!(%error, "transparent huge pages stay allowed");
    }
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(config),
        other => cli::run(other, config).map_err(|e| e.to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn serve(config: Config) -> Result<(), String> {
    actix_web::rt::System::new().block_on(async move {
        let app = Application::build(config)
            .await
            .map_err(|e| e.to_string())?;
        app.run_until_stopped().await.map_err(|e| e.to_string())
    })
}

/// Asks Linux for no transparent huge pages in this process. With them
/// (mimalloc asks for them on its arenas, and some systems use them
/// unasked), each thread's first small allocations made a 2 MiB page
/// resident, and argon2's 19 MiB blocks were rounded up to 2 MiB pages:
/// 84 MiB resident when ready instead of 52, and 109–121 MiB at the peak
/// of the 1,000,000-key benchmark instead of 75–77; argon2 ran about 4 %
/// slower without them (docs/BENCHMARKS.md). Before any thread starts, so
/// that every page is faulted under the setting.
fn no_transparent_huge_pages() -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        rustix::thread::disable_transparent_huge_pages(true)?;
    }
    Ok(())
}

/// Logs go to stderr so that `--json` output on stdout stays parseable.
fn init_tracing() {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(variables::DEFAULT_LOG_FILTER));
    tracing_subscriber::registry()
        .with(filter)
        .with(keygate::http::edge::ConnectionErrorsAsWarnings)
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::stderr().is_terminal()),
        )
        .init();
}
