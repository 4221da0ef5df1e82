//! `skrei dashboard`: logs a browser in to the node's dashboard (issue 19).
//!
//! The client asks the node, with its token, for a one-time login path and
//! opens it in the user's browser (or prints it). The token itself never
//! reaches the browser: the link is exchanged for a session cookie.

use std::process::ExitCode;

use clap::Args;

use super::client::{ApiArgs, Client};
use api::dashboard::LoginCode;

#[derive(Args, Debug)]
pub struct DashboardArgs {
    #[command(flatten)]
    api: ApiArgs,
    /// Print the login link (it works once, for two minutes) instead of
    /// opening a browser.
    #[arg(long)]
    print_url: bool,
}

pub fn run(args: DashboardArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&args.api)?;
    let login: LoginCode = client.post("/api/v1/dashboard/login", &serde_json::json!({}))?;
    let url = format!("{}{}", args.api.url.trim_end_matches('/'), login.path);
    if args.print_url {
        super::print_line(&url);
        return Ok(ExitCode::SUCCESS);
    }
    // The link goes to the browser as an argument of this user's process,
    // never through a shell.
    match std::process::Command::new("xdg-open").arg(&url).status() {
        Ok(status) if status.success() => {
            eprintln!("skrei: opened the dashboard in your browser");
        }
        _ => {
            eprintln!("skrei: no browser could be opened; open this link (it works once):");
            super::print_line(&url);
        }
    }
    Ok(ExitCode::SUCCESS)
}
