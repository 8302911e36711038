//! The `tierbench` binary: parse, dispatch, map errors to exit codes.

use std::process::ExitCode;

use clap::Parser;
use tierbench::cli::{Cli, Command};
use tierbench::commands;
use tierbench::error::{InputError, Interrupted};

fn main() -> ExitCode {
    // Inside an emulated machine this binary is /init.
    if tierbench::vm::guest::is_init() {
        tierbench::vm::guest::init_main();
    }
    tierbench::interrupt::install_panic_hook();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Topo(a) => commands::topo(a),
        Command::Probe(a) => commands::probe(a),
        Command::Run(a) => commands::run(*a),
        Command::Knobs(a) => commands::knobs(a),
        Command::Vm(a) => commands::vm(a),
        Command::Conform(a) => commands::conform(a),
        Command::Bw(a) => commands::bw(a),
        Command::Latency(a) => commands::latency(a),
        Command::Matrix(a) => commands::matrix(a),
        Command::Compare(a) => commands::compare(a),
        Command::Plot(a) => commands::plot(a),
        Command::ConformCase { spec } => commands::conform_case(&spec),
    };
    match result {
        Ok(code) => code,
        Err(e) if e.downcast_ref::<Interrupted>().is_some() => {
            eprintln!("tierbench: {e}");
            ExitCode::from(130)
        }
        Err(e) => {
            let input = e.chain().any(|c| c.downcast_ref::<InputError>().is_some());
            // One line: the context chain joined, outermost first.
            let msg: Vec<String> = e.chain().map(|c| c.to_string()).collect();
            eprintln!("tierbench: error: {}", msg.join(": "));
            ExitCode::from(if input { 2 } else { 1 })
        }
    }
}
