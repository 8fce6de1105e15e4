//! TEMPORARY stub (replaced by the doctor branch).
pub fn run(_json: bool) -> anyhow::Result<std::process::ExitCode> {
    Ok(std::process::ExitCode::SUCCESS)
}
