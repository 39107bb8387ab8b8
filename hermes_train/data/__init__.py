"""The SFT data: loaders of public dataset formats, the project's own sources, and the weighted mix."""
