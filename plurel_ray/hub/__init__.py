"""The Hugging Face Hub: checkpoints and dataset folders pushed and downloaded with the
real `huggingface_hub` client (`transfer`), and the model card of a checkpoint (`card`).
Nothing here knows Ray; `pipeline/hub_sync.py` wires the pushes into a Ray Train run.
"""
