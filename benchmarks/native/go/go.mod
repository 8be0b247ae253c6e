module gopy/benchmarks/native/go

go 1.19
