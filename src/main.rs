fn main() -> std::process::ExitCode {
    dvc_bridge::cli::main()
}
