"""Linear evaluation on frozen features: a linear classifier trained on the backbone's
pooled features (SGD, or LARS for large batches), cosine schedule, top-1 on val.

choice: features are extracted once from the whole image (no crop augmentation while
training the classifier) and standardised with the train set's mean and std: a fast,
deterministic probe; the papers' protocol trains on random-resized crops for 90-100 epochs.
"""

from __future__ import annotations

import torch
from tqdm import tqdm

from viewkit.trainer.optimizers import LARS
from viewkit.trainer.schedules import learning_rate


def linear_top1(train_features: torch.Tensor, train_labels: torch.Tensor, val_features: torch.Tensor,
                val_labels: torch.Tensor, *, epochs: int = 100, lr: float = 0.1, batch_size: int = 256,
                optimizer: str = "sgd", weight_decay: float = 0.0, seed: int = 0, progress: bool = False) -> float:
    if (train_labels < 0).any() or (val_labels < 0).any():
        raise ValueError("linear evaluation needs labelled shards (every label >= 0)")
    generator = torch.Generator().manual_seed(seed)
    mean, std = train_features.mean(0), train_features.std(0).clamp_min(1e-6)
    x_train, x_val = (train_features - mean) / std, (val_features - mean) / std
    classes = int(max(train_labels.max(), val_labels.max())) + 1
    classifier = torch.nn.Linear(x_train.shape[1], classes)
    torch.nn.init.zeros_(classifier.weight)
    torch.nn.init.zeros_(classifier.bias)
    parameters = list(classifier.parameters())
    opt = (LARS(parameters, lr=lr, momentum=0.9, weight_decay=weight_decay) if optimizer == "lars"
           else torch.optim.SGD(parameters, lr=lr, momentum=0.9, weight_decay=weight_decay))
    steps_per_epoch = -(-len(x_train) // batch_size)
    total, step = epochs * steps_per_epoch, 0
    for _ in tqdm(range(epochs), desc="linear probe", unit="epoch", leave=False, disable=not progress):
        order = torch.randperm(len(x_train), generator=generator)
        for start in range(0, len(order), batch_size):
            index = order[start : start + batch_size]
            for group in opt.param_groups:
                group["lr"] = learning_rate(step, total, lr)
            loss = torch.nn.functional.cross_entropy(classifier(x_train[index]), train_labels[index])
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
    with torch.no_grad():
        return (classifier(x_val).argmax(1) == val_labels).float().mean().item()
