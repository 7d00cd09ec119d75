//! `keygate audit export`: the audit log, oldest first, as NDJSON (one
//! object per line, the fields of `/api/v1/audit-events`) or CSV with a
//! header row, written to stdout batch by batch (`crate::audit::export`).

use std::io::Write;

use clap::{Subcommand, ValueEnum};

use super::{CliError, Context};
use crate::audit::EventFilter;
use crate::audit::export::{self, After};

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Print every audit event, oldest first.
    Export {
        /// Only events at or after this time: an RFC 3339 time, or a
        /// YYYY-MM-DD day (UTC) from its start.
        #[arg(long)]
        since: Option<String>,
        /// Only events at or before this time: an RFC 3339 time, or a
        /// YYYY-MM-DD day (UTC) to its end.
        #[arg(long)]
        until: Option<String>,
        /// ndjson (one JSON object per line) or csv (with a header row).
        #[arg(long, value_enum, default_value_t = Format::Ndjson)]
        format: Format,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One JSON object per line.
    Ndjson,
    /// Comma-separated, with a header row.
    Csv,
}

pub fn run(command: AuditCommand, ctx: &mut Context) -> Result<(), CliError> {
    let AuditCommand::Export {
        since,
        until,
        format,
    } = command;
    let filter = EventFilter::default()
        .with_period(since.as_deref(), until.as_deref())
        .map_err(CliError::Usage)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if format == Format::Csv {
        out.write_all(crate::csv::record(export::CSV_HEADER).as_bytes())?;
    }
    let mut after: Option<After> = None;
    loop {
        let batch = export::batch(ctx.conn(), &filter, after.as_ref(), export::BATCH)?;
        for event in &batch {
            let text = match format {
                Format::Ndjson => export::ndjson_line(event),
                Format::Csv => export::csv_record(event),
            }
            .map_err(|e| CliError::Usage(format!("could not write an event: {e}")))?;
            out.write_all(text.as_bytes())?;
        }
        match After::last_of(&batch) {
            Some(last) if i64::try_from(batch.len()).is_ok_and(|n| n == export::BATCH) => {
                after = Some(last);
            }
            _ => break,
        }
    }
    out.flush()?;
    Ok(())
}
