"""Reading what the user hands perfkit, without running any of it: what a path holds (the one format
sniffer), ONNX files into nouns, data files (.npz, .npy, .csv, .parquet), and the pickle scan and trust gate
that stand before every unpickling."""
