fn main() -> std::process::ExitCode {
    metarec::cli::main()
}
