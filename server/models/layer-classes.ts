import * as tf from '@tensorflow/tfjs-core';
// Importing TF.js Layers registers its layer classes in tfjs-core's serialization map.
import * as tfl from '@tensorflow/tfjs-layers';
import { TributaryError } from '../../shared/errors.ts';
import { layerClassNames } from '../../shared/ml/models.ts';

/** A layer class TF.js ships: registered for deserialization, and a layer (not an optimizer or initializer of the same map). */
function isShippedLayer(className: string): boolean {
  const registered = tf.serialization.SerializationMap.getMap().classNameMap;
  // hasOwn: a class_name such as "constructor" must not find Object's own properties.
  if (!Object.hasOwn(registered, className)) return false;
  const [cls] = registered[className]!;
  return cls.prototype instanceof tfl.layers.Layer;
}

/** Whether any object in the topology sets `key` to `value` (configs nest: wrappers, cells, inner models). */
function setsAnywhere(node: unknown, key: string, value: unknown): boolean {
  if (Array.isArray(node)) return node.some((n) => setsAnywhere(n, key, value));
  if (!node || typeof node !== 'object') return false;
  return Object.entries(node).some(([k, v]) => (k === key && v === value) || setsAnywhere(v, key, value));
}

/**
 * Refuses a topology with a layer class TF.js does not ship (a custom layer, a Keras
 * Lambda, a layer TF.js lacks), naming it: the server and every device must build the
 * same model from the topology alone. Stateful recurrent layers are refused too: they
 * allocate state for a fixed batch while they build, and devices train on shuffled batches.
 */
export function checkLayerClasses(topology: unknown): void {
  const unknown = [...new Set(layerClassNames(topology).filter((name) => !isShippedLayer(name)))];
  if (unknown.length > 0) throw new TributaryError('MODEL_LAYER_UNSUPPORTED', `${unknown.map((n) => `"${n}"`).join(', ')} ${unknown.length === 1 ? 'is not a layer class' : 'are not layer classes'} of TF.js ${tfl.version_layers}`);
  if (setsAnywhere(topology, 'stateful', true)) throw new TributaryError('MODEL_LAYER_UNSUPPORTED', 'a stateful recurrent layer: devices train on shuffled batches, so state cannot carry over');
}
