"""Build a small COCO-format tree-crown detection set from the NEON images in deepforest.

The deepforest 2.1.0 wheel (weecology, MIT licence) ships a few real NEON airborne
RGB orthophotos (10 cm/px; NEON data are released under CC0 1.0) with hand-drawn
tree-crown boxes in Pascal VOC xml. This script turns them into a tiny detection
data set that mmdet's ``CocoDataset`` and ``CocoMetric`` can read directly.

Get the source folder without importing deepforest::

    python -m pip download --no-deps deepforest==2.1.0 -d /tmp/deepforest_whl
    unzip -o /tmp/deepforest_whl/deepforest-2.1.0-py3-none-any.whl \
        'deepforest/data/*' -d /tmp/deepforest_data
    python tools/prepare_neon_trees.py --src /tmp/deepforest_data/deepforest/data

Processing rules:

* Boxes: every VOC label (``Tree``, ``Dead``, ``Alive``) becomes the single class
  ``tree`` (category id 1). VOC corners are 1-based and inclusive, so a box
  ``(xmin, ymin, xmax, ymax)`` covers the continuous pixel region
  ``[xmin - 1, xmax] x [ymin - 1, ymax]``; this keeps every box of the source
  inside ``[0, width] x [0, height]``.
* Tiling: an image larger than ``--tile-size`` in a dimension is cut on a regular
  grid with stride ``--tile-size``; the last row/column is shifted back so that it
  ends at the image border (it then overlaps its neighbour). A dimension that is
  not larger than the tile size is kept whole. A box goes into a tile when at least
  ``--min-visible`` (default 0.5) of its area lies inside the tile; it is then
  clipped to the tile. Tiles without boxes are dropped.
* Split (deterministic, no randomness): images named in ``--val-images`` go to
  val whole. For every other image the non-empty tiles are first grouped so that
  tiles sharing pixels stay together (only the shifted last row/column overlaps
  its neighbour, so a group holds 1, 2 or 4 tiles); no image pixel is thus in
  both splits. The groups are walked in row-major order of their first tile (top
  row first, left to right) and a group goes to val when that brings the number
  of val tiles closer to ``1 / --val-every`` of the tiles walked so far. For
  single-tile groups this is simply every 5th tile starting with the 3rd (3rd,
  8th, 13th, ...); an image that fits in one tile goes to train unless it is
  named in ``--val-images``.

Outputs: ``OUT/train/*.jpg``, ``OUT/val/*.jpg`` (JPEG quality 90) and
``OUT/annotations/{train,val}.json`` in COCO format, with ``file_name``
relative to the split folder.
"""
import argparse
import json
import math
import os
import os.path as osp
import xml.etree.ElementTree as ET

import numpy as np
from PIL import Image

DEFAULT_IMAGES = (
    'OSBS_029',
    'SOAP_061',
    '2019_YELL_2_541000_4977000_image_crop',
    '2019_YELL_2_528000_4978000_image_crop2',
)
CATEGORIES = [{'id': 1, 'name': 'tree'}]


def parse_args():
    """Parse the command line.

    Returns:
        argparse.Namespace: The parsed arguments.
    """
    parser = argparse.ArgumentParser(
        description='Tile the NEON tree-crown images shipped in deepforest into a '
        'small COCO-format detection set.')
    parser.add_argument('--src', required=True,
                        help='the extracted deepforest/data folder (png + VOC xml)')
    parser.add_argument('--out', default='demo_data/neon_trees', help='output folder')
    parser.add_argument('--images', nargs='+', default=list(DEFAULT_IMAGES),
                        help='source image stems (without extension), in processing order')
    parser.add_argument('--val-images', nargs='*', default=['SOAP_061'],
                        help='source image stems that go to val whole')
    parser.add_argument('--tile-size', type=int, default=400, help='tile side in pixels')
    parser.add_argument('--min-visible', type=float, default=0.5,
                        help='keep a box in a tile when at least this fraction of its '
                        'area lies inside the tile')
    parser.add_argument('--val-every', type=int, default=5,
                        help='val gets about one tile in N of each tiled image')
    parser.add_argument('--quality', type=int, default=90, help='JPEG quality')
    return parser.parse_args()


def find_image(src, stem):
    """Locate the image file of a source stem.

    Args:
        src (str): Source folder.
        stem (str): File name without extension.

    Returns:
        str: Path of the first existing ``stem.png``/``.jpg``/``.tif`` file.
    """
    for ext in ('.png', '.jpg', '.jpeg', '.tif', '.tiff'):
        path = osp.join(src, stem + ext)
        if osp.isfile(path):
            return path
    raise FileNotFoundError(f'no image for {stem!r} in {src}')


def read_voc_boxes(xml_path):
    """Read the boxes of a Pascal VOC annotation file.

    Args:
        xml_path (str): Path of the VOC xml file.

    Returns:
        tuple: ``(boxes, labels, size)`` where ``boxes`` is a float ``(N, 4)`` array
        of ``x0, y0, x1, y1`` in continuous 0-based pixel coordinates (VOC corners
        are 1-based and inclusive, so ``x0 = xmin - 1`` and ``x1 = xmax``),
        ``labels`` the original label names and ``size`` the ``(width, height)``
        written in the file, or ``None`` when the file has no size.
    """
    root = ET.parse(xml_path).getroot()
    boxes, labels = [], []
    for obj in root.iter('object'):
        bnd = obj.find('bndbox')
        xmin, ymin, xmax, ymax = (float(bnd.find(k).text) for k in ('xmin', 'ymin', 'xmax', 'ymax'))
        boxes.append([xmin - 1.0, ymin - 1.0, xmax, ymax])
        labels.append(obj.find('name').text.strip())
    size = root.find('size')
    wh = None
    if size is not None:
        wh = (int(size.find('width').text), int(size.find('height').text))
    return np.asarray(boxes, dtype=np.float64).reshape(-1, 4), labels, wh


def grid_starts(length, tile):
    """Start offsets of a regular tiling along one dimension.

    Args:
        length (int): Image size along the dimension.
        tile (int): Tile size.

    Returns:
        list[int]: Offsets ``0, tile, 2 * tile, ...``; the last one is shifted back
        to ``length - tile`` so the tile stays inside the image. A single ``0`` when
        ``length <= tile``.
    """
    if length <= tile:
        return [0]
    n = math.ceil(length / tile)
    return [min(i * tile, length - tile) for i in range(n)]


def boxes_in_tile(boxes, x0, y0, tw, th, min_visible):
    """Select and clip the boxes that belong to a tile.

    Args:
        boxes (np.ndarray): ``(N, 4)`` boxes ``x0, y0, x1, y1`` in image coordinates.
        x0 (int): Left edge of the tile.
        y0 (int): Top edge of the tile.
        tw (int): Tile width.
        th (int): Tile height.
        min_visible (float): Minimum fraction of a box's area inside the tile.

    Returns:
        np.ndarray: ``(M, 4)`` kept boxes, clipped and shifted to tile coordinates.
    """
    if len(boxes) == 0:
        return boxes.reshape(0, 4)
    cx0 = np.clip(boxes[:, 0], x0, x0 + tw)
    cy0 = np.clip(boxes[:, 1], y0, y0 + th)
    cx1 = np.clip(boxes[:, 2], x0, x0 + tw)
    cy1 = np.clip(boxes[:, 3], y0, y0 + th)
    inter = (cx1 - cx0) * (cy1 - cy0)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    keep = (area > 0) & (inter >= min_visible * area)
    out = np.stack([cx0 - x0, cy0 - y0, cx1 - x0, cy1 - y0], axis=1)[keep]
    return out


def overlaps(a, b):
    """Whether two tiles share any pixel.

    Args:
        a (dict): Tile with ``x0``, ``y0``, ``w``, ``h`` (and ``source``).
        b (dict): Another tile.

    Returns:
        bool: True when both come from the same source image and intersect.
    """
    return (a['source'] == b['source'] and a['x0'] < b['x0'] + b['w'] and b['x0'] < a['x0'] + a['w']
            and a['y0'] < b['y0'] + b['h'] and b['y0'] < a['y0'] + a['h'])


def tile_image(stem, image, boxes, tile, min_visible):
    """Cut one image into tiles with their boxes.

    Args:
        stem (str): Source image stem, used in tile names.
        image (PIL.Image.Image): The RGB image.
        boxes (np.ndarray): ``(N, 4)`` boxes in image coordinates.
        tile (int): Tile size.
        min_visible (float): See :func:`boxes_in_tile`.

    Returns:
        list[dict]: Non-empty tiles in row-major order, each with ``source``,
        ``name``, ``x0``, ``y0``, ``w``, ``h`` and ``boxes`` (tile coordinates).
    """
    width, height = image.size
    tw, th = min(tile, width), min(tile, height)
    tiles = []
    for y0 in grid_starts(height, tile):
        for x0 in grid_starts(width, tile):
            kept = boxes_in_tile(boxes, x0, y0, tw, th, min_visible)
            if len(kept) == 0:
                continue
            tiles.append(dict(source=stem, name=f'{stem}_x{x0:04d}_y{y0:04d}.jpg',
                              x0=x0, y0=y0, w=tw, h=th, boxes=kept))
    return tiles


def overlap_groups(tiles):
    """Group tiles that share pixels, directly or through other tiles.

    Only the shifted last row/column overlaps its neighbour, so a group has one
    tile (interior), two (last two columns or rows) or four (bottom-right corner).

    Args:
        tiles (list[dict]): Tiles of one image in row-major order.

    Returns:
        list[list[dict]]: Connected groups, ordered by the row-major position of
        their first tile; tiles keep their row-major order inside a group.
    """
    group_of = list(range(len(tiles)))  # union-find parents

    def find(i):
        while group_of[i] != i:
            group_of[i] = group_of[group_of[i]]
            i = group_of[i]
        return i

    for i in range(len(tiles)):
        for j in range(i + 1, len(tiles)):
            if overlaps(tiles[i], tiles[j]):
                group_of[find(j)] = find(i)
    groups = {}
    for i, t in enumerate(tiles):
        groups.setdefault(find(i), []).append(t)
    return sorted(groups.values(), key=lambda g: tiles.index(g[0]))


def assign_splits(tiles, whole_val, every):
    """Assign each tile of one image to ``train`` or ``val`` in place.

    Tiles that share pixels are grouped (see :func:`overlap_groups`) and a whole
    group goes to one split, so no image pixel is in both splits. The groups are
    walked in row-major order and a group goes to val when that brings the val
    tile count closer to ``1 / every`` of the tiles walked so far (ties stay in
    train). With single-tile groups and ``every=5`` this picks the 3rd, 8th, 13th,
    ... tile; a lone tile (an image no larger than a tile) goes to train.

    Args:
        tiles (list[dict]): Non-empty tiles of one image in row-major order.
        whole_val (bool): Send every tile to val.
        every (int): Val gets about one tile in ``every``.
    """
    n_seen = n_val = 0
    for group in overlap_groups(tiles):
        n_seen += len(group)
        # compare |n_val + len - n_seen / every| with |n_val - n_seen / every|, times every
        to_val = whole_val or (abs((n_val + len(group)) * every - n_seen)
                               < abs(n_val * every - n_seen))
        n_val += len(group) if to_val else 0
        for t in group:
            t['split'] = 'val' if to_val else 'train'


def coco_dict(tiles, split):
    """Build the COCO annotation dict of one split.

    Args:
        tiles (list[dict]): Tiles of this split, in output order.
        split (str): ``train`` or ``val``.

    Returns:
        dict: COCO ``info``, ``images``, ``annotations`` and ``categories``.
    """
    images, anns = [], []
    for img_id, t in enumerate(tiles, start=1):
        images.append(dict(id=img_id, file_name=t['name'], width=int(t['w']), height=int(t['h']),
                           source_image=t['source'], tile_offset=[int(t['x0']), int(t['y0'])]))
        for x0, y0, x1, y1 in t['boxes'].tolist():
            w, h = x1 - x0, y1 - y0
            anns.append(dict(id=len(anns) + 1, image_id=img_id, category_id=1,
                             bbox=[float(x0), float(y0), float(w), float(h)],
                             area=float(w * h), iscrowd=0))
    info = dict(description=f'NEON tree crowns ({split}), 400x400 tiles of the images shipped '
                'in the deepforest 2.1.0 wheel (weecology, MIT); NEON imagery CC0 1.0',
                version='1.0')
    return dict(info=info, images=images, annotations=anns, categories=CATEGORIES)


def clear_outputs(out):
    """Remove tiles and annotation files of an earlier run (other files are kept).

    Args:
        out (str): Output folder.
    """
    for split in ('train', 'val'):
        folder = osp.join(out, split)
        if osp.isdir(folder):
            for name in os.listdir(folder):
                if name.endswith('.jpg'):
                    os.remove(osp.join(folder, name))
        ann = osp.join(out, 'annotations', f'{split}.json')
        if osp.isfile(ann):
            os.remove(ann)


def folder_size(path):
    """Total size in bytes of the files under a folder.

    Args:
        path (str): Folder.

    Returns:
        int: Sum of file sizes.
    """
    return sum(osp.getsize(osp.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def main():
    """Tile, split and write the data set, then print a summary."""
    args = parse_args()
    clear_outputs(args.out)
    for sub in ('train', 'val', 'annotations'):
        os.makedirs(osp.join(args.out, sub), exist_ok=True)

    splits = {'train': [], 'val': []}
    print(f'{"source image":42s} {"size":>10s} {"boxes":>5s} {"labels":20s} '
          f'{"train t/b":>10s} {"val t/b":>8s}')
    for stem in args.images:
        img_path = find_image(args.src, stem)
        boxes, labels, wh = read_voc_boxes(osp.join(args.src, stem + '.xml'))
        image = Image.open(img_path).convert('RGB')
        if wh is not None and wh != image.size:
            raise ValueError(f'{stem}: xml size {wh} != image size {image.size}')
        tiles = tile_image(stem, image, boxes, args.tile_size, args.min_visible)
        assign_splits(tiles, stem in args.val_images, args.val_every)
        for t in tiles:
            crop = image.crop((t['x0'], t['y0'], t['x0'] + t['w'], t['y0'] + t['h']))
            crop.save(osp.join(args.out, t['split'], t['name']), quality=args.quality)
            splits[t['split']].append(t)
        counts = {s: (sum(t['split'] == s for t in tiles),
                      sum(len(t['boxes']) for t in tiles if t['split'] == s)) for s in splits}
        label_str = ','.join(f'{n}:{labels.count(n)}' for n in sorted(set(labels)))
        size = f'{image.size[0]}x{image.size[1]}'
        print(f'{stem:42s} {size:>10s} {len(boxes):>5d} {label_str:20s} '
              f'{counts["train"][0]:>4d}/{counts["train"][1]:<5d} '
              f'{counts["val"][0]:>3d}/{counts["val"][1]:<4d}')

    for split, tiles in splits.items():
        with open(osp.join(args.out, 'annotations', f'{split}.json'), 'w') as f:
            json.dump(coco_dict(tiles, split), f)
    n_tiles = sum(len(v) for v in splits.values())
    for split, tiles in splits.items():
        n_boxes = sum(len(t['boxes']) for t in tiles)
        print(f'{split:5s}: {len(tiles):3d} tiles ({len(tiles) / max(n_tiles, 1):.0%}), '
              f'{n_boxes:4d} boxes, {folder_size(osp.join(args.out, split)) / 1e6:.2f} MB of JPEG')
    print(f'total size of {args.out}: {folder_size(args.out) / 1e6:.2f} MB')


if __name__ == '__main__':
    main()
