//! The `s3-elector` binary: parse the command line and hand over to the
//! library, which sets up logging, runs the command and gives the exit code.

use clap::Parser;

fn main() {
    let cli = s3_elector::cli::Cli::parse();
    std::process::exit(s3_elector::cli::main(cli));
}
