//! The `s3-elector` binary: parse the command line, set up logging and hand
//! over to the library.

use clap::Parser;

fn main() {
    let cli = s3_elector::cli::Cli::parse();
    s3_elector::cli::init_logging(&cli);
    let code = s3_elector::cli::main(cli);
    std::process::exit(code);
}
