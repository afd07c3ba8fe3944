//! `fleetwire attack`: the hostile-load suite ([`fleetwire::attack`]).

use std::process::ExitCode;

use clap::Args;
use fleetwire::attack::{run, AttackOptions};

#[derive(Args)]
pub(crate) struct AttackArgs {
    /// The long form (bigger, longer attacks: the figures).
    #[arg(long)]
    long: bool,
    /// Only the attacks whose name contains this.
    #[arg(long)]
    only: Option<String>,
    /// Peak RSS allowed to the attacked process, in MiB.
    #[arg(long, default_value_t = 256)]
    budget_mib: u64,
}

pub(crate) fn attack(args: AttackArgs) -> ExitCode {
    let Ok(exe) = std::env::current_exe() else {
        eprintln!("fleetwire attack: cannot find this executable");
        return ExitCode::from(2);
    };
    let mut opts = AttackOptions::new(exe);
    opts.long = args.long;
    opts.only = args.only;
    opts.budget_bytes = args.budget_mib << 20;
    let outcomes = run(&opts, &mut std::io::stdout());
    let failed = outcomes.iter().filter(|o| !o.ok()).count();
    println!("{} attacks, {failed} failed", outcomes.len());
    if failed == 0 && !outcomes.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
