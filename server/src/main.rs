fn main() -> std::process::ExitCode {
    landfall_server::cli::main()
}
