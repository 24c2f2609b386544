//! `caravan task`: the requester's commands for data projects, on the same desk the API serves.

use std::io::{BufWriter, Write};
use std::path::PathBuf;

use caravan_core::{Address, Licence, Ppm};
use caravan_node::desk::Desk;
use caravan_tasks::export::{ExportFormat, export_chunks};
use caravan_tasks::import::{AnnotationUse, ImportFormat, import_file};
use caravan_tasks::project::{ProjectId, ProjectSpec};
use clap::{Args, Subcommand, ValueEnum};

use crate::StoreArgs;
use crate::commands::ensure_genesis;
use crate::present::{amount, open_journal, progress, table};

#[derive(Subcommand)]
pub enum TaskCommand {
    /// Post a project from a JSON spec and escrow its budget from the requester's prepaid
    /// balance (which `caravan deposit` fills).
    ///
    /// The spec is the API's `ProjectSpec` (see `examples/project.json`): title, instructions,
    /// schema (single_choice, multiple_choice, free_text, rating, pairwise, spans), overlap,
    /// token, bounty and budget in base units, gold rate, exam, skill bar, minimum seconds per
    /// item, daily cap, deadline, lease length, queue order and truth-inference method.
    Create(CreateArgs),
    /// Import items from a JSONL, CSV or Label Studio JSON file.
    Import(ImportArgs),
    /// List projects with their progress.
    List,
    /// A project's progress: items resolved, judgments, paused contributors, money paid.
    Status(ProjectArg),
    /// Publish resolved work as a dataset asset whose contributors share its royalties.
    Publish(PublishArgs),
    /// Close a project to new work and return the unneeded budget to the requester.
    ///
    /// What pending judgments and active leases could still claim stays in escrow; closing again
    /// later releases what became free since. Released budget is the requester's entitlement,
    /// claimable on chain after the next epoch close.
    Close(CloseArgs),
    /// Write the latest published rows as JSONL, CSV or Label Studio JSON (to stdout or --out).
    ///
    /// The rows are rebuilt from the log as they were at publication, so they match the dataset
    /// asset's item root even if work went on afterwards.
    Export(ExportArgs),
}

#[derive(Args)]
pub struct CreateArgs {
    /// The requester's address; the budget is escrowed from its prepaid balance.
    #[arg(long)]
    requester: Address,
    /// The project spec, a JSON file.
    #[arg(long)]
    spec: PathBuf,
}

#[derive(Args)]
pub struct ProjectArg {
    /// The project id printed by `caravan task create`.
    project: String,
}

#[derive(Args)]
pub struct ImportArgs {
    project: String,
    #[arg(long)]
    requester: Address,
    /// Items: `.jsonl`, `.csv` or `.json` (Label Studio tasks); `--format` overrides the extension.
    file: PathBuf,
    #[arg(long, value_enum)]
    format: Option<FormatArg>,
    /// What a Label Studio file's annotations become: left out, each task's first as its gold
    /// answer (a check question), or suggestions shown to contributors.
    #[arg(long, value_enum, default_value = "skip")]
    annotations: AnnotationsArg,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum AnnotationsArg {
    Skip,
    Gold,
    PreLabels,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum FormatArg {
    Jsonl,
    Csv,
    LabelStudio,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum LicenceArg {
    OpenUse,
    NonCommercial,
}

#[derive(Args)]
pub struct PublishArgs {
    project: String,
    #[arg(long)]
    requester: Address,
    /// The dataset's name.
    #[arg(long)]
    name: String,
    #[arg(long, value_enum, default_value = "open-use")]
    licence: LicenceArg,
    /// What the requester keeps as curator, e.g. "10%"; contributors share the rest.
    #[arg(long, default_value = "0%")]
    curator_share: String,
}

#[derive(Args)]
pub struct CloseArgs {
    project: String,
    #[arg(long)]
    requester: Address,
}

#[derive(Args)]
pub struct ExportArgs {
    project: String,
    #[arg(long, value_enum, default_value = "jsonl")]
    format: FormatArg,
    /// Write here instead of standard output.
    #[arg(long)]
    out: Option<PathBuf>,
    /// With --format label-studio: the `name` of the answering tag in your Label Studio config
    /// (`<Choices name="sentiment" …>`). By default, the one the project's Label Studio import
    /// found, else `label`.
    #[arg(long, value_parser = tag_name)]
    from_name: Option<String>,
    /// With --format label-studio: the `name` of the tag it labels (`<Text name="text" …>`).
    /// By default, the one the project's Label Studio import found, else `text`.
    #[arg(long, value_parser = tag_name)]
    to_name: Option<String>,
}

fn tag_name(text: &str) -> Result<String, String> {
    caravan_tasks::label_studio::check_tag_name(text).map(|()| text.to_owned())
}

pub fn task(store: &StoreArgs, command: TaskCommand) -> Result<(), String> {
    let mut journal = open_journal(store)?;
    ensure_genesis(&mut journal)?;
    let desk = Desk::open(journal).map_err(|e| e.to_string())?;
    match command {
        TaskCommand::Create(args) => {
            let text = std::fs::read_to_string(&args.spec)
                .map_err(|e| format!("cannot read {}: {e}", args.spec.display()))?;
            let spec: ProjectSpec =
                serde_json::from_str(&text).map_err(|e| format!("{}: {e}", args.spec.display()))?;
            let id = desk
                .create_project(args.requester, spec)
                .map_err(|e| e.to_string())?;
            println!("project {id}");
        }
        TaskCommand::Import(args) => {
            let project = project_id(&args.project)?;
            let format = match args.format {
                Some(f) => import_format(f),
                None => args
                    .file
                    .file_name()
                    .and_then(|n| n.to_str())
                    .and_then(ImportFormat::from_file_name)
                    .ok_or_else(|| {
                        format!(
                            "cannot tell the format of {} from its name; pass --format jsonl|csv|label-studio",
                            args.file.display()
                        )
                    })?,
            };
            let text = std::fs::read_to_string(&args.file)
                .map_err(|e| format!("cannot read {}: {e}", args.file.display()))?;
            let schema = desk
                .with_board(&project, |b| b.spec.schema.clone())
                .map_err(|e| e.to_string())?;
            let annotations = match args.annotations {
                AnnotationsArg::Skip => AnnotationUse::Skip,
                AnnotationsArg::Gold => AnnotationUse::Gold,
                AnnotationsArg::PreLabels => AnnotationUse::PreLabels,
            };
            let file = import_file(format, &text, &schema, annotations).map_err(|refused| {
                let mut why = format!(
                    "{}: not imported, {} bad record(s):",
                    args.file.display(),
                    refused.bad_records
                );
                for error in &refused.errors {
                    why.push_str(&format!("\n  {error}"));
                }
                if refused.bad_records > refused.errors.len() {
                    why.push_str(&format!(
                        "\n  … and {} more",
                        refused.bad_records - refused.errors.len()
                    ));
                }
                why
            })?;
            let items = &file.items;
            let bar = progress(items.len() as u64, "importing");
            let mut added = 0;
            for chunk in items.chunks(5_000) {
                added += desk
                    .add_items(&project, args.requester, chunk.to_vec())
                    .map_err(|e| e.to_string())?;
                bar.inc(chunk.len() as u64);
            }
            bar.finish_and_clear();
            println!(
                "imported {added} new items ({} already present)",
                items.len() - added
            );
            for note in file.skipped.notes() {
                println!("{note}");
            }
        }
        TaskCommand::List => {
            let mut t = table(
                &["project", "title", "items", "resolved", "paid"],
                &[2, 3, 4],
            );
            for id in desk.projects() {
                let (spec, status) = desk.status(&id).map_err(|e| e.to_string())?;
                let paid = desk
                    .journal()
                    .read(|j| amount(j.economy(), &spec.token, status.paid));
                t.add_row(vec![
                    id.to_string(),
                    spec.title,
                    status.items.to_string(),
                    status.resolved.to_string(),
                    paid,
                ]);
            }
            println!("{t}");
        }
        TaskCommand::Status(args) => print_status(&desk, &project_id(&args.project)?)?,
        TaskCommand::Publish(args) => {
            let project = project_id(&args.project)?;
            let licence = match args.licence {
                LicenceArg::OpenUse => Licence::OpenUse,
                LicenceArg::NonCommercial => Licence::NonCommercial,
            };
            let share = Ppm::from_percent_text(&args.curator_share)
                .map_err(|e| format!("--curator-share: {e}"))?;
            let (asset, dataset) = desk
                .publish(&project, args.requester, args.name, licence, share)
                .map_err(|e| e.to_string())?;
            println!("dataset asset {asset}");
            println!(
                "{} rows, item root {}, {} contributors",
                dataset.rows.len(),
                dataset.item_root,
                dataset.contributors.len()
            );
        }
        TaskCommand::Close(args) => {
            let project = project_id(&args.project)?;
            let released = desk
                .close_project(&project, args.requester)
                .map_err(|e| e.to_string())?;
            let token = desk
                .with_board(&project, |b| b.spec.token)
                .map_err(|e| e.to_string())?;
            let released = desk
                .journal()
                .read(|j| amount(j.economy(), &token, released));
            println!("closed; {released} released to the requester");
        }
        TaskCommand::Export(args) => {
            let project = project_id(&args.project)?;
            let format = match args.format {
                FormatArg::Jsonl => ExportFormat::Jsonl,
                FormatArg::Csv => ExportFormat::Csv,
                FormatArg::LabelStudio => ExportFormat::LabelStudio {
                    from_name: args.from_name.clone(),
                    to_name: args.to_name.clone(),
                },
            };
            let out: Box<dyn Write> = match &args.out {
                Some(path) => Box::new(
                    std::fs::File::create(path)
                        .map_err(|e| format!("cannot create {}: {e}", path.display()))?,
                ),
                None => Box::new(std::io::stdout().lock()),
            };
            let mut out = BufWriter::new(out);
            let (asset, dataset, board) = desk.published(&project).map_err(|e| e.to_string())?;
            for chunk in export_chunks(&dataset, &board, &format) {
                out.write_all(chunk.as_bytes())
                    .map_err(|e| format!("cannot write the export: {e}"))?;
            }
            out.flush()
                .map_err(|e| format!("cannot write the export: {e}"))?;
            eprintln!(
                "exported {} rows of dataset {asset} (item root {})",
                dataset.rows.len(),
                dataset.item_root
            );
        }
    }
    Ok(())
}

fn import_format(format: FormatArg) -> ImportFormat {
    match format {
        FormatArg::Jsonl => ImportFormat::Jsonl,
        FormatArg::Csv => ImportFormat::Csv,
        FormatArg::LabelStudio => ImportFormat::LabelStudio,
    }
}

pub fn project_id(text: &str) -> Result<ProjectId, String> {
    text.parse()
        .map(ProjectId)
        .map_err(|e| format!("{text:?} is not a project id (0x and 64 hex digits): {e}"))
}

/// Prints a project's progress as a table.
pub fn print_status(desk: &Desk, project: &ProjectId) -> Result<(), String> {
    let (spec, status) = desk.status(project).map_err(|e| e.to_string())?;
    let money = |units| {
        desk.journal()
            .read(|j| amount(j.economy(), &spec.token, units))
    };
    let mut t = table(&["", ""], &[1]);
    let rows = [
        ("title", spec.title.clone()),
        (
            "items (gold)",
            format!("{} ({})", status.items, status.gold_items),
        ),
        ("resolved", status.resolved.to_string()),
        ("judgments", status.judgments.to_string()),
        ("contributors", status.contributors.to_string()),
        ("paused", status.paused.to_string()),
        ("awaiting review", status.awaiting_review.to_string()),
        (
            "paid / budget",
            format!("{} / {}", money(status.paid), money(status.budget)),
        ),
    ];
    for (name, value) in rows {
        t.add_row(vec![name.to_owned(), value]);
    }
    let metric = |v: Option<f64>| v.map_or("—".to_owned(), |v| format!("{v:.3}"));
    t.add_row(vec![
        "agreement (Fleiss κ / Krippendorff α)".to_owned(),
        format!(
            "{} / {}",
            metric(status.fleiss_kappa),
            metric(status.krippendorff_alpha)
        ),
    ]);
    for (model, (agree, compared)) in &status.model_agreement {
        t.add_row(vec![
            format!("model {model} agrees"),
            format!("{agree} of {compared}"),
        ]);
    }
    if status.resolved > 0 && status.confidence_at_resolution.iter().any(|&n| n > 0) {
        let bins: Vec<String> = status
            .confidence_at_resolution
            .iter()
            .map(u64::to_string)
            .collect();
        t.add_row(vec![
            "confidence at resolution (0–10% … 90–100%)".to_owned(),
            bins.join(" "),
        ]);
    }
    println!("{t}");
    Ok(())
}
