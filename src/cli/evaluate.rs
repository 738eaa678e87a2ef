pub fn evaluate(_args: &crate::cli::args::EvaluateArgs) -> anyhow::Result<()> {
    anyhow::bail!("not yet")
}
