"""`t2i-keras demo`: a local web page to type captions and see a model's images."""
