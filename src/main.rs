//! The `s3-elector` binary: parse the command line and hand over to the
//! library, which sets up logging, runs the command and gives the exit code
//! (one of `s3_elector::exit`'s).

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let code = match s3_elector::cli::Cli::try_parse() {
        Ok(cli) => s3_elector::cli::main(cli),
        Err(e) => {
            let _ = e.print();
            s3_elector::cli::usage_exit_code(&e, std::env::args())
        }
    };
    // Exit codes are 0-255; anything else would be a bug, reported as 1.
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
