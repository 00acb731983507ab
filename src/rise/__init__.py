"""rise: Recursive Introspection (Qu, Zhang, Garg, Kumar 2024) for Hugging Face models.

The pure core (tasks, graders, prompts, episodes, weighting, metrics) imports the standard
library only; torch and transformers load lazily in the stages that need them.
"""
__version__ = "0.1.0"
