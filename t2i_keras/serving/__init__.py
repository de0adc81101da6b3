"""TF Serving: signature names (no TensorFlow), SavedModel export, REST/gRPC clients."""
