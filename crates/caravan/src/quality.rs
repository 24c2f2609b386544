//! `caravan quality`: truth inference and agreement over any `item,worker,label` file, without a
//! store, so requesters can check a method on their own data before trusting it with pay.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use caravan_tasks::agreement::{fleiss_kappa, krippendorff_alpha};
use caravan_tasks::answers::parse_truth_csv;
use caravan_tasks::inference::accuracy;
use caravan_tasks::{Answers, Method, infer};
use clap::{Args, Subcommand, ValueEnum};

use crate::present::table;

#[derive(Subcommand)]
pub enum QualityCommand {
    /// Infer one label per item from many judgments.
    ///
    /// Reads a CSV file with a header line and rows `item,worker,label` (columns by position,
    /// header names ignored). Prints `item,label,confidence` per item; with `--truth`, prints a
    /// summary instead whose last line is the accuracy over the items with known truth and judgments.
    ///
    /// Example: caravan quality infer --method ds --answers answer.csv --truth truth.csv
    Infer(InferArgs),
    /// Chance-corrected agreement between workers: Fleiss' kappa and Krippendorff's alpha.
    Agreement(AgreementArgs),
}

#[derive(Clone, Copy, ValueEnum)]
pub enum MethodArg {
    /// Majority vote; a tie goes to the smallest label (numeric order when labels are integers).
    Mv,
    /// Majority vote weighted by each worker's agreement with the plain majority.
    Wawa,
    /// Dawid–Skene: EM over a confusion matrix per worker (the usual best choice).
    Ds,
    /// GLAD: EM over worker ability and item difficulty.
    Glad,
}

impl From<MethodArg> for Method {
    fn from(arg: MethodArg) -> Method {
        match arg {
            MethodArg::Mv => Method::MajorityVote,
            MethodArg::Wawa => Method::Wawa,
            MethodArg::Ds => Method::DawidSkene,
            MethodArg::Glad => Method::Glad,
        }
    }
}

#[derive(Args)]
pub struct InferArgs {
    #[arg(long, value_enum, default_value = "ds")]
    method: MethodArg,
    /// Judgments: header line, then `item,worker,label` rows.
    #[arg(long)]
    answers: PathBuf,
    /// Known truth: header line, then `item,label` rows. Switches the output to a summary
    /// ending in `accuracy: 0.9400`: the share of the truth items that have judgments, the
    /// way published evaluations count it (truth items nobody judged are counted apart).
    #[arg(long)]
    truth: Option<PathBuf>,
}

#[derive(Args)]
pub struct AgreementArgs {
    /// Judgments: header line, then `item,worker,label` rows.
    #[arg(long)]
    answers: PathBuf,
}

pub fn run(command: QualityCommand) -> Result<(), String> {
    match command {
        QualityCommand::Infer(args) => infer_labels(args),
        QualityCommand::Agreement(args) => {
            let answers = read_answers(&args.answers)?;
            let show = |v: Option<f64>| v.map_or("undefined".to_owned(), |v| format!("{v:.4}"));
            println!("fleiss_kappa: {}", show(fleiss_kappa(&answers)));
            println!("krippendorff_alpha: {}", show(krippendorff_alpha(&answers)));
            Ok(())
        }
    }
}

fn infer_labels(args: InferArgs) -> Result<(), String> {
    let answers = read_answers(&args.answers)?;
    let method = Method::from(args.method);
    let result = infer(&answers, method);
    let Some(truth_path) = args.truth else {
        let stdout = std::io::stdout();
        let mut out = BufWriter::new(stdout.lock());
        let write = |out: &mut BufWriter<_>| -> std::io::Result<()> {
            writeln!(out, "item,label,confidence")?;
            for (item, (label, confidence)) in
                result.labels.iter().zip(&result.confidence).enumerate()
            {
                let key = answers.item_key(item as u32);
                writeln!(out, "{key},{},{confidence:.4}", answers.label_name(*label))?;
            }
            out.flush()
        };
        return match write(&mut out) {
            // A reader such as `head` that stops early is not a failure of ours.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            other => other.map_err(|e| format!("cannot write the labels: {e}")),
        };
    };
    let truth = parse_truth_csv(&read(&truth_path)?)
        .map_err(|e| format!("{}: {e}", truth_path.display()))?;
    let scored = accuracy(&answers, &result, &truth);
    let Some(share) = scored.share() else {
        return Err(if truth.is_empty() {
            format!("{} has no truth rows", truth_path.display())
        } else {
            format!(
                "none of the {} items in {} has a judgment in {}: check that both files name items the same way",
                truth.len(),
                truth_path.display(),
                args.answers.display()
            )
        });
    };
    let mut summary = table(&["", ""], &[1]);
    summary.add_row(vec!["method".to_owned(), method.code().to_owned()]);
    summary.add_row(vec!["items".to_owned(), answers.item_count().to_string()]);
    summary.add_row(vec![
        "workers".to_owned(),
        answers.worker_count().to_string(),
    ]);
    summary.add_row(vec![
        "judgments".to_owned(),
        answers.judgments().len().to_string(),
    ]);
    summary.add_row(vec!["iterations".to_owned(), result.iterations.to_string()]);
    summary.add_row(vec![
        "items with truth and judgments".to_owned(),
        scored.compared.to_string(),
    ]);
    summary.add_row(vec![
        "truth items nobody judged (left out)".to_owned(),
        scored.unjudged.to_string(),
    ]);
    summary.add_row(vec!["correct".to_owned(), scored.correct.to_string()]);
    println!("{summary}");
    println!("accuracy: {share:.4}");
    Ok(())
}

fn read_answers(path: &Path) -> Result<Answers, String> {
    Answers::parse_csv(&read(path)?).map_err(|e| format!("{}: {e}", path.display()))
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}
