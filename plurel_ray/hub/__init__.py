"""The Hugging Face Hub, through the real `huggingface_hub` client: checkpoints and dataset
folders pushed (`push`), in the background with retries (`uploader`), read back
(`download`); the client, endpoint, token and errors they share (`client`), and the model
card of a checkpoint (`card`). Nothing here knows Ray; `pipeline/hub_sync.py` wires the
pushes into a Ray Train run.
"""
