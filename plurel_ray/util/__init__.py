"""Leaf helpers every room may import: they import only the standard library and
`plurel_ray.errors`, never another room of the package."""
