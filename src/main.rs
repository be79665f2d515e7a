//! The `s3-elector` binary: parse the command line and hand over to the
//! library, which sets up logging, runs the command and gives the exit code.

use clap::Parser;

fn main() {
    let cli = match s3_elector::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            std::process::exit(s3_elector::cli::usage_exit_code(&e, std::env::args()));
        }
    };
    std::process::exit(s3_elector::cli::main(cli));
}
