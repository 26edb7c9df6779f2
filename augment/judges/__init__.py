"""Judges that owe nothing to the generator: a pretrained face recognizer for
identity (``identity``), where on an aligned face each attribute lives
(``regions``), colours an edit brought that the face did not have (``colour``).
Scores made by models the project trains itself are named as such."""
