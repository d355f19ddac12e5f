"""Reading what strangers send and writing what must survive a crash: bounded JSON and CSV parsing, safe file and
method names, cells a spreadsheet would run as formulas, the largest image the suite agrees to decode, PyTorch
checkpoints read without unpickling, and atomic writes. Imports nothing of the suite but `benchmark.errors`."""
