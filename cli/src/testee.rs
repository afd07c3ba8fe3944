//! `fleetwire testee` (hidden): the reference testee of the conformance suite on
//! stdin/stdout.

use std::process::ExitCode;

use clap::Args;
use fleetwire_conformance::{self as conformance, Faults, Mutant};

use crate::conformance::mutant_parser;

#[derive(Args)]
pub(crate) struct TesteeArgs {
    /// Inject one deliberate bug (also FLEETWIRE_MUTANT).
    #[arg(long, value_name = "NAME", value_parser = mutant_parser)]
    mutant: Option<Mutant>,
    /// (harness self-test) exit abruptly on requests whose case matches GLOB.
    #[arg(long, value_name = "GLOB", hide = true)]
    crash_on: Option<String>,
    /// (harness self-test) never answer requests whose case matches GLOB.
    #[arg(long, value_name = "GLOB", hide = true)]
    hang_on: Option<String>,
}

pub(crate) fn testee(args: TesteeArgs) -> ExitCode {
    let faults = Faults {
        crash_on: args.crash_on,
        hang_on: args.hang_on,
    };
    ExitCode::from(conformance::testee_command(args.mutant, &faults))
}
