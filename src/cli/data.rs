//! `metarec data PATH [--json]`: load a dataset and print its summary.
use crate::data::{self, CsvOptions, RatingScale, Summary};
use std::path::PathBuf;

/// Arguments of `metarec data`.
#[derive(clap::Args)]
pub struct Args {
    /// A dataset directory (MovieLens 100K or latest/20M/25M), a ratings file (MovieLens
    /// ratings.csv or generic user,item,rating[,timestamp]), or `synthetic[:SEED]` for the
    /// built-in synthetic world.
    path: PathBuf,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Field delimiter of a generic file (one character, or "tab"); detected when absent.
    #[arg(long, value_parser = parse_delimiter)]
    delimiter: Option<u8>,
    /// The generic file has a header line (detected when neither flag is given).
    #[arg(long, conflicts_with = "no_header")]
    header: bool,
    /// The generic file has no header line.
    #[arg(long)]
    no_header: bool,
    /// Smallest valid rating of a generic file.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    min_rating: f32,
    /// Largest valid rating of a generic file.
    #[arg(long, default_value_t = 5.0, allow_negative_numbers = true)]
    max_rating: f32,
}

fn parse_delimiter(s: &str) -> Result<u8, String> {
    match s {
        "tab" | "\\t" => Ok(b'\t'),
        _ if s.len() == 1 && s.is_ascii() => Ok(s.as_bytes()[0]),
        _ => Err(format!(
            "expected one ASCII character or \"tab\", found {s:?}"
        )),
    }
}

/// `Some(seed)` when `path` names the synthetic world (and no such file exists).
pub(super) fn synthetic_seed(path: &std::path::Path) -> Result<Option<u64>, String> {
    let Some(text) = path.to_str() else {
        return Ok(None);
    };
    if path.exists() {
        return Ok(None);
    }
    match text.strip_prefix("synthetic") {
        Some("") => Ok(Some(0)),
        Some(rest) => match rest.strip_prefix(':').map(str::parse::<u64>) {
            Some(Ok(seed)) => Ok(Some(seed)),
            _ => Err(format!(
                "expected synthetic or synthetic:SEED (an integer), found {text:?}"
            )),
        },
        None => Ok(None),
    }
}

/// Runs `metarec data`.
pub fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let options = CsvOptions {
        delimiter: args.delimiter,
        header: match (args.header, args.no_header) {
            (true, _) => Some(true),
            (_, true) => Some(false),
            _ => None,
        },
        scale: RatingScale {
            min: args.min_rating,
            max: args.max_rating,
        },
    };
    let dataset = match synthetic_seed(&args.path)? {
        Some(seed) => data::World::generate(data::WorldConfig {
            seed,
            ..Default::default()
        })?
        .dataset(seed)?,
        None => data::load_with(&args.path, &options)?,
    };
    let summary = dataset.summary();
    super::print_output(args.json, &summary, || render(&summary))?;
    Ok(())
}

/// The text form of a summary.
fn render(s: &Summary) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(out, "dataset    {} ({:?})", s.name, s.format);
    let _ = writeln!(out, "users      {}", s.users);
    let _ = writeln!(
        out,
        "items      {} ({} rated, {} genres)",
        s.items, s.rated_items, s.genres
    );
    let _ = writeln!(out, "ratings    {}", s.ratings);
    let _ = writeln!(out, "density    {:.4}%", s.density * 100.0);
    let _ = writeln!(out, "mean       {:.3}", s.mean_rating);
    let _ = writeln!(out, "like-rate  {:.3} (share of ratings >= 4)", s.like_rate);
    let _ = writeln!(out, "histogram");
    let max = s
        .histogram
        .iter()
        .map(|b| b.count)
        .max()
        .unwrap_or(1)
        .max(1);
    for b in &s.histogram {
        let bar = "#".repeat((b.count * 40 / max) as usize);
        let _ = writeln!(out, "  {:>4} {:>10} {bar}", b.rating, b.count);
    }
    let _ = writeln!(out, "warnings   {}", s.warnings.len());
    for w in &s.warnings {
        let _ = writeln!(out, "  - {}", w.message);
    }
    out
}
