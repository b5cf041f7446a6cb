//! `murphy-operator`: the Kubernetes front door. For now it prints the CRD the Helm chart
//! ships (`murphy-operator crd`); the controller and the node agent come next.

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "murphy-operator",
    version,
    about = "Murphy's Kubernetes front door"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Print the Experiment CustomResourceDefinition (YAML), generated from the engine's types.
    Crd,
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Cmd::Crd => {
            let yaml = murphy_operator::crd::crd_yaml().map_err(anyhow::Error::msg)?;
            print!("{yaml}");
        }
    }
    Ok(())
}
