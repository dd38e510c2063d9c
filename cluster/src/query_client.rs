//! `flowsight query …`: registers, lists, shows and drops registered queries and prints
//! their results, through the HTTP API of a running engine (so it works the same against
//! one process or any process of a cluster).

use std::io::{Read, Write};
use std::time::Duration;

use anyhow::{anyhow, Context};
use serde_json::{json, Value};

use crate::cli::QueryCommand;

/// Runs one query command and prints the engine's answer as JSON.
pub fn run(command: QueryCommand) -> anyhow::Result<()> {
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()?;
    let path = |name: &str| {
        percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    let (request, url) = match command {
        QueryCommand::Register {
            name,
            sql,
            plan,
            api,
        } => {
            let body = match (sql, plan) {
                (Some(sql), _) => json!({ "name": name, "sql": sql }),
                (None, Some(file)) => {
                    let mut text = String::new();
                    if file.as_os_str() == "-" {
                        std::io::stdin().read_to_string(&mut text)?;
                    } else {
                        text = std::fs::read_to_string(&file)
                            .with_context(|| format!("cannot read {}", file.display()))?;
                    }
                    let plan: Value = serde_json::from_str(&text)
                        .with_context(|| format!("{} is not JSON", file.display()))?;
                    json!({ "name": name, "plan": plan })
                }
                (None, None) => return Err(anyhow!("give --sql or --plan")),
            };
            let url = format!("{}/v1/queries", api.url.trim_end_matches('/'));
            (http.post(&url).json(&body), url)
        }
        QueryCommand::List { api } => {
            let url = format!("{}/v1/queries", api.url.trim_end_matches('/'));
            (http.get(&url), url)
        }
        QueryCommand::Show { name, api } => {
            let url = format!(
                "{}/v1/queries/{}",
                api.url.trim_end_matches('/'),
                path(&name)
            );
            (http.get(&url), url)
        }
        QueryCommand::Drop { name, api } => {
            let url = format!(
                "{}/v1/queries/{}",
                api.url.trim_end_matches('/'),
                path(&name)
            );
            (http.delete(&url), url)
        }
        QueryCommand::Results { name, limit, api } => {
            let url = format!(
                "{}/v1/queries/{}/results?limit={limit}",
                api.url.trim_end_matches('/'),
                path(&name)
            );
            (http.get(&url), url)
        }
    };
    let response = request
        .send()
        .with_context(|| format!("cannot reach the engine at {url}"))?;
    let status = response.status();
    let body: Value = response
        .json()
        .with_context(|| format!("the engine at {url} did not answer JSON"))?;
    if !status.is_success() {
        let code = body["error"]["code"].as_str().unwrap_or("error");
        let message = body["error"]["message"].as_str().unwrap_or("");
        return Err(anyhow!("{status}: {code}: {message}"));
    }
    let text = serde_json::to_string_pretty(&body)?;
    // A reader that stops early (`| head`) is not an error.
    match writeln!(std::io::stdout(), "{text}") {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}
