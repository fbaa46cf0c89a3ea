//! `metarec bench` (being built).

/// Arguments of `metarec bench`.
#[derive(clap::Args)]
pub struct Args {}

/// Runs `metarec bench`.
pub fn run(_args: Args) -> Result<(), Box<dyn std::error::Error>> {
    Err("metarec bench is not built yet".into())
}
