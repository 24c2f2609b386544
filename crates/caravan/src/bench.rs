//! `caravan bench`: placeholder until the benchmark lands.
use clap::Subcommand;

#[derive(Subcommand)]
pub enum BenchCommand {}

pub fn run(command: BenchCommand) -> Result<(), String> {
    match command {}
}
