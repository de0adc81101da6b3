"""Small shared utilities (files, seeded noise, plots): no model, data or TensorFlow code."""
