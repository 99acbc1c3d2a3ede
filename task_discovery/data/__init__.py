"""What the method and the jobs read: image datasets and their train / meta-validation /
held-out parts, tasks (labellings of the images: human, random, from files), adversarial splits
built from task labels, and the checks of a config against the data it draws from.
"""
