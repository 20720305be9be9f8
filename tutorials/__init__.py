"""The lectures' lessons as notebooks that run on this codebase (README, "Tutorials")."""
