use std::time::SystemTime;

use clap::Subcommand;

use super::CliError;
use crate::app::Config;
use crate::mail::transport::{Mailer, Outgoing, compose};

#[derive(Debug, Subcommand)]
pub enum MailCommand {
    /// Send a test message through the configured transport, right away (not
    /// through the outbox), and report success or the exact SMTP error.
    Test {
        /// Where to send it.
        email: String,
    },
}

pub fn run(command: MailCommand, config: &Config) -> Result<(), CliError> {
    match command {
        MailCommand::Test { email } => send_test(config, &email),
    }
}

fn send_test(config: &Config, to: &str) -> Result<(), CliError> {
    // The SMTP transport's pool needs a runtime from its construction on.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(send_test_async(config, to))
}

async fn send_test_async(config: &Config, to: &str) -> Result<(), CliError> {
    let mailer = Mailer::new(&config.mail, config.mail_tuning.smtp_timeout)
        .map_err(|e| CliError::Usage(e.to_string()))?;
    let message_id = format!("test-{}@keygate", uuid::Uuid::new_v4().simple());
    let text = format!(
        "This is a test message from keygate, sent with `keygate mail test`.\n\n\
         Transport: {}\nFrom: {}\n\nIf you can read this, key owners will receive their emails.\n",
        mailer.describe(),
        config.mail_from
    );
    let html = "<!DOCTYPE html><html><body><p>This is a test message from keygate, sent with \
                <code>keygate mail test</code>.</p><p>If you can read this, key owners will \
                receive their emails.</p></body></html>";
    let message = compose(
        &config.mail_from,
        &Outgoing {
            message_id: &message_id,
            to,
            subject: "[keygate] test message",
            text: &text,
            html,
        },
        SystemTime::now(),
    )
    .map_err(|e| CliError::Usage(e.to_string()))?;
    mailer.send(message).await.map_err(|e| {
        CliError::Usage(format!(
            "sending to {to} via {} failed: {e}",
            mailer.describe()
        ))
    })?;
    println!("sent a test message to {to} via {}", mailer.describe());
    Ok(())
}
