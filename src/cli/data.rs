//! `metarec data` (being built).

/// Arguments of `metarec data`.
#[derive(clap::Args)]
pub struct Args {}

/// Runs `metarec data`.
pub fn run(_args: Args) -> Result<(), Box<dyn std::error::Error>> {
    Err("metarec data is not built yet".into())
}
