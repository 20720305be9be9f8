"""The papers' tables, as data: each row our config and the published numbers.

A row: `name` (also its run's directory), `config` (a config file) and `overrides` (its
`get_config` arguments and `config.` keys, as in a sweep), whose model at the config's
image size and `num_classes` gives the parameters and multiply-adds, and `paper`: {params,
mult_adds, top1_err, top5_err} as published (None where the source gives none), with
`source`. `eval_mode` is how the paper
evaluated (evaluate.py's modes; a row's own `eval_mode` overrides its table's).
"""

M, G = 1e6, 1e9


def _row(name, config, overrides, num_classes, source, params=None, mult_adds=None,
         top1_err=None, top5_err=None, note='', eval_mode=None):
  paper = {'params': params, 'mult_adds': mult_adds, 'top1_err': top1_err, 'top5_err': top5_err}
  return {'name': name, 'config': config, 'overrides': overrides, 'num_classes': num_classes,
          'source': source, 'note': note, 'eval_mode': eval_mode, 'paper': paper}


# He et al. 2016, Table 6: CIFAR-10 test error (%), "best (mean±std)" for 110; params.
RESNET_CIFAR10 = [
    _row(f'resnet{d}', 'configs/resnet.py', {'depth': d}, 10,
         'He et al. 2016, Table 6', params=p * M, top1_err=e)
    for d, e, p in [(20, 8.75, 0.27), (32, 7.51, 0.46), (44, 7.17, 0.66), (56, 6.97, 0.85),
                    (110, 6.43, 1.7), (1202, 7.93, 19.4)]]

# He et al. 2016: Table 1 (FLOPs, i.e. multiply-adds), Table 3 (10-crop validation
# error; ResNet-34 option B), for bottlenecks that stride in their first 1x1 conv as the
# paper's did (`stride_in_1x1`). torchvision's V1 weights, single 224 crop, as a second
# reference in the note.
TORCHVISION_RESNET_TOP1 = {18: 69.758, 34: 73.314, 50: 76.130, 101: 77.374, 152: 78.312}
RESNET_IMAGENET = [
    _row(f'resnet{d}', 'configs/resnet.py',
         {'imagenet': True, 'depth': d, 'stride_in_1x1': d >= 50}, 1000,
         'He et al. 2016, Tables 1 and 3', mult_adds=f * G, top1_err=t1,
         top5_err=t5, note=f'torchvision V1 single crop top-1 error '
         f'{100 - TORCHVISION_RESNET_TOP1[d]:.3f}')
    for d, f, t1, t5 in [(18, 1.8, None, None), (34, 3.6, 24.52, 7.46),
                         (50, 3.8, 22.85, 6.71), (101, 7.6, 21.75, 6.05),
                         (152, 11.3, 21.43, 5.71)]]

# Simonyan & Zisserman 2015: Table 2 (params, millions), Table 3 (single scale, S=Q=256).
VGG_IMAGENET = [
    _row(f'vgg_{c.lower().replace("-", "_")}', 'configs/vgg.py', {'config': c}, 1000,
         'Simonyan & Zisserman 2015, Tables 2 and 3', params=p * M, top1_err=t1, top5_err=t5)
    for c, p, t1, t5 in [('A', 133, 29.6, 10.4), ('A-LRN', 133, 29.7, 10.5),
                         ('B', 133, 28.7, 9.9), ('C', 134, 28.1, 9.4), ('D', 138, 27.0, 8.8),
                         ('E', 144, 27.3, 9.0)]]

# Krizhevsky et al. 2012, Table 2 (1 CNN, ILSVRC-2012 validation); torchvision's
# single-GPU variant: 56.522 / 79.066 accuracy, 61.1M parameters.
ALEXNET_IMAGENET = [
    _row('alexnet_v1', 'configs/alexnet.py', {'v1': True}, 1000,
         'Krizhevsky et al. 2012, Table 2 (1 CNN)', params=60 * M, top1_err=40.7,
         top5_err=18.2, note='"60 million parameters" (section 1)'),
    _row('alexnet', 'configs/alexnet.py', {}, 1000,
         'torchvision AlexNet_Weights.IMAGENET1K_V1', params=61.1 * M,
         top1_err=100 - 56.522, top5_err=100 - 79.066, eval_mode='center'),
]

# LeCun et al. 1998, section III.C: LeNet-5 0.95% test error on MNIST; "60,000 trainable
# parameters" (section II.B). Ours connects C3 to all S2 maps and ends in a linear layer
# instead of RBF units, so it has 61,706 parameters.
LENET_MNIST = [
    _row('lenet5_mnist5k', 'configs/lenet.py', {}, 10,
         'LeCun et al. 1998, section III.C', params=60_000, top1_err=0.95,
         note='mnist5k: 4,000 train / 1,000 test digits, not the full MNIST'),
    _row('lenet5_mnist', 'configs/lenet.py', {'mnist': True}, 10,
         'LeCun et al. 1998, section III.C', params=60_000, top1_err=0.95),
]

# The ILSVRC classification winners' top-5 test error (%): competition entries, most of
# them ensembles with multi-crop testing; our rows are single models.
ILSVRC_HISTORY = [
    _row('2012_alexnet', 'configs/alexnet.py', {'v1': True}, 1000,
         'ILSVRC 2012 (SuperVision): 5 CNNs', top5_err=16.4),
    _row('2013_zfnet', 'configs/alexnet.py', {'zfnet': True}, 1000,
         'ILSVRC 2013 (Clarifai / Zeiler & Fergus): ensemble', top5_err=11.7),
    _row('2014_vgg', 'configs/vgg.py', {'config': 'D'}, 1000,
         'ILSVRC 2014 (VGG, 2nd): 7-net ensemble', top5_err=7.3),
    _row('2014_googlenet', 'configs/googlenet.py', {}, 1000,
         'ILSVRC 2014 (GoogLeNet): 7 nets, 144 crops', top5_err=6.7),
    _row('2015_resnet', 'configs/resnet.py',
         {'imagenet': True, 'depth': 152, 'stride_in_1x1': True},
         1000, 'ILSVRC 2015 (ResNet): ensemble', top5_err=3.57),
    _row('2017_senet', 'configs/resnet.py',
         {'imagenet': True, 'depth': 50, 'config.model.name': 'se_resnet50'},
         1000, 'ILSVRC 2017 (SENet): ensemble', top5_err=2.3),
]

TABLES = {
    'resnet_cifar10': {'rows': RESNET_CIFAR10, 'eval_mode': 'center', 'figure': 'depth',
                       'title': 'CIFAR-10 ResNets (He et al. 2016, Table 6)'},
    'resnet_imagenet': {'rows': RESNET_IMAGENET, 'eval_mode': '10crop',
                        'title': 'ImageNet ResNets (He et al. 2016, Tables 1 and 3)'},
    'vgg_imagenet': {'rows': VGG_IMAGENET, 'eval_mode': 'dense',
                     'title': 'VGG A-E (Simonyan & Zisserman 2015, Tables 2 and 3)'},
    'alexnet_imagenet': {'rows': ALEXNET_IMAGENET, 'eval_mode': '10crop',
                         'title': 'AlexNet (Krizhevsky et al. 2012)'},
    'lenet_mnist': {'rows': LENET_MNIST, 'eval_mode': 'center',
                    'title': 'LeNet-5 on MNIST (LeCun et al. 1998)'},
    'ilsvrc_history': {'rows': ILSVRC_HISTORY, 'eval_mode': 'center',
                       'title': 'ILSVRC winners, top-5 error (competition entries)'},
}
