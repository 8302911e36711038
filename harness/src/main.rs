//! The `tierbench` binary: parse, dispatch, map errors to exit codes.

use std::process::ExitCode;

use tierbench::app;
use tierbench::cli::Command;

fn main() -> ExitCode {
    // Inside an emulated machine this binary is /init.
    if tierbench::vm::guest::is_init() {
        tierbench::vm::guest::init_main();
    }
    tierbench::interrupt::install_panic_hook();
    let cli = tierbench::cli::parse();
    let result = match cli.command {
        Command::Topo(a) => app::topo::topo(a),
        Command::Probe(a) => app::probe::probe(a),
        Command::Run(a) => app::run::run(*a),
        Command::Knobs(a) => app::knobs::knobs(a),
        Command::Vm(a) => app::vm::vm(a),
        Command::Conform(a) => app::conform::conform(a),
        Command::Bw(a) => app::measure::bw(a),
        Command::Latency(a) => app::measure::latency(a),
        Command::Matrix(a) => app::measure::matrix(a),
        Command::Compare(a) => app::compare::compare(a),
        Command::Plot(a) => app::plot::plot(a),
        Command::Hosts(a) => match a.check {
            Some(profile) => app::catalog::check_host(&profile),
            None => app::catalog::list(tierbench::named::Kind::Host),
        },
        Command::Scenarios => app::catalog::list(tierbench::named::Kind::Scenario),
        Command::Generate(a) => app::generate::generate(a),
        Command::ConformCase { spec } => app::conform::conform_case(&spec),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            let (code, line) = tierbench::error::report(&e);
            if !line.is_empty() {
                tierbench::errln!("{line}");
            }
            code
        }
    }
}
